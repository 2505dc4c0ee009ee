"""PyTorch references of the official DINO code, imported by the fixture scripts."""
