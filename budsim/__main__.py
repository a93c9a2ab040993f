from budsim.entry import main

main()
