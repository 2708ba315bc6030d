\Afping: [^\n]*no-such-file[^\n]*No such file or directory\n\Z
