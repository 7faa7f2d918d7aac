import torch


def test_tiny_htdemucs_loads_through_demucs_repo(tiny_htdemucs_repo):
    from demucs.apply import apply_model
    from demucs.pretrained import get_model

    model = get_model("htdemucs", repo=tiny_htdemucs_repo)
    mix = torch.randn(1, 2, 44100)
    out = apply_model(model, mix, device="cpu", progress=False)
    assert out.shape == (1, 4, 2, 44100)
    assert model.sources[-1] == "vocals"
