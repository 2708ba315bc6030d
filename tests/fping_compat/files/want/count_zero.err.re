\Afping: [^\n]+\n\Z
