"""Pieces several models share (graphs, losses, dropout, modality encoders); a model imports these, never another model."""
