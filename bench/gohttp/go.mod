module covetbench/gohttp

go 1.22
