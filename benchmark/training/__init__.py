"""Learning from data: augmentation, the BC trainer, the imitation loop, DAgger, DART, HG-DAgger, the zoo."""
