"""Local training images: what `fedsage image build` makes and what the docker backend runs.

* daemon.py: the Docker daemon through the Docker SDK for Python (one-line error when there is
  none), the labels fedsage puts on images and containers, and the cache folder;
* build.py: a training image that behaves like a SageMaker scikit-learn framework image (same
  Python minor, same scikit-learn, the real sagemaker-training toolkit as `train`), built offline
  from hash-pinned wheels (requirements-<framework>.lock here), tagged by its inputs.
"""
