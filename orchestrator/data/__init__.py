"""Data: the built-in data sets, preparation (split, SMOTE, partition, schema) and the prepared-folder layout."""
