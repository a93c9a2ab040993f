from budsim.cli import main

main()
