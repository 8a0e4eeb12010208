package normalize

//go:generate go run gen_confusables.go -in data/confusables.txt -out tables_confusables.go
