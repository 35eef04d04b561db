"""The console's pages, one module per area; ``base.ConsolePage`` is what each account page stands on."""
