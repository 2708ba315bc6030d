\Afping: [^\n]*out of range[^\n]*\n\Z
