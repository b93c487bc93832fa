from clagent.cli.main import main

main()
