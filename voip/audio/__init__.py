"""Audio: PCM helpers, the mixing engine, WAV files."""
