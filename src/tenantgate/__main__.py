from tenantgate.cli import main

main()
