\Afping: [^\n]*files[^\n]*Is a directory\n\Z
