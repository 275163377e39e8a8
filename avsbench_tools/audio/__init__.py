"""Audio: WAV I/O, VGGish log-mel examples, per-second sound activity."""
