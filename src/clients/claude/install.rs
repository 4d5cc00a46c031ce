//! `relay install claude` and `relay uninstall claude`: wire Relay into Claude Code.
