from gastown_tasks.cli import main

main()
