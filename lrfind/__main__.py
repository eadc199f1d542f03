from lrfind.cli.app import main

main()
