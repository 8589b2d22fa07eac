// Placeholder until the host setup tests land.
