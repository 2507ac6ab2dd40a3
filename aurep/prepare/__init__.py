"""``aurep prepare``: raw sources -> prepared datasets, and flow targets for them.

:mod:`.command` (the CLI and its step registry), one module per step (:mod:`.videos`,
:mod:`.converters` for BP4D/DISFA/GFT, :mod:`.flow`), :mod:`.jobs` (many videos in parallel,
resumable), :mod:`.frames` (decoding) and :mod:`.faces` (face finding and alignment, also used
by ``aurep infer``).
"""
