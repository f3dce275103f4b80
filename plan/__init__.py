"""Pure decisions of the program: configuration, service catalog, naming. No Pulumi imports."""
