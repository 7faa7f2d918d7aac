from fsclap.offline_models import minilm_path, smoke_test_offline_models


def test_shipped_models_load_and_run_offline():
    assert (minilm_path() / "config.json").is_file()
    report = smoke_test_offline_models("cpu")
    assert report["resemblyzer"].startswith("256-d")
    assert report["all-MiniLM-L6-v2"].startswith("384-d")
