from trainer.cli.commands import main

main()
