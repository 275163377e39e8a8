from avsbench_tools.cli import main

main()
