"""Names both sides of the federation must agree on; no imports, so the orchestrator's CLI can read them cheaply."""

SCHEMA_FILE = "schema.json"  # the feature schema beside a channel's CSV files and the server's test set
CHECKSUM_SUFFIX = ".sha256"  # model.joblib -> model.joblib.sha256, written by save_model, checked by inspect
PENALTIES = ("l2", "l1", "elasticnet", "none")  # LogisticRegression regularisation, as config and train.py name it
