"""The run directory and its files (the Store role): `directory` owns a run directory (lock, resolved config,
checkpoints, records, resume), `checkpoint` reads and writes its safetensors checkpoints, `files` writes
config.yaml, summary.json and rounds.csv, `summary` reads and checks a summary.json. The Store knows files, never
models: nothing here scores weights or trains."""
