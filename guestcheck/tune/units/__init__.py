"""One unit per subsystem the tuner changes, as TuneD's plugins each own one: sysctl keys (sysctl.py), NIC
features (features.py), channels (channels.py), rings (rings.py), RPS masks (rps.py), and the .link files and
udev rules that carry the NIC settings over a reboot (links.py). base.py says what a unit provides; nic.py is
what the NIC units share. Each plans, applies, verifies and rolls back its own settings over the one journal
(guestcheck/tune/journal.py); the engine (guestcheck/tune/engine.py) runs them and holds their list."""
