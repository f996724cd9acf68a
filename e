timeout: failed to run command ‘listen’: No such file or directory
