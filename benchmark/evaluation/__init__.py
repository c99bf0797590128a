"""The versioned protocol, rollouts of its episodes, episode records, metric definitions and results."""
