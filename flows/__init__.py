"""Prefect flows (thin wrappers over pipeline/ and model/): build-corpus, train-fsclap, evaluate-fsclap."""
