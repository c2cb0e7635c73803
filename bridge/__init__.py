"""bridge: a telephony gateway between Twilio Media Streams and Agents Platform voice agents."""

import os as _os

# The resampler's per-frame matrix products are tiny; a multi-threaded BLAS turns them
# into cross-core hand-offs that can cost 100x on a busy 2-core host. Set before numpy
# is first imported (anything importing bridge.* gets here first); an explicit setting
# by the operator wins.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
