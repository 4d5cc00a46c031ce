// The Copilot CLI extension Relay installs (being written).
