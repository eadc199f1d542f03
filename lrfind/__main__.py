from lrfind.cli import main

main()
