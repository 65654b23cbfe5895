from grantkeeper.cli import main

main()
