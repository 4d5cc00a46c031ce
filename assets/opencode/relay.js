// The OpenCode plugin Relay installs (being written).
