import GockerCLI
GockerMain.main()
