from dbsize.cli import main

main()
