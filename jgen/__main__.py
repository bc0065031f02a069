from jgen.cli import main

main()
