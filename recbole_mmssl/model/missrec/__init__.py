"""MISSRec (Wang et al., ACM MM 2023): the model, its interest discovery, fusion, augmentation, transfer and trainer."""

from recbole_mmssl.model.missrec.missrec import MISSRec

__all__ = ["MISSRec"]
