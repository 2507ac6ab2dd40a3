"""Face finding and alignment, shared by ``aurep prepare`` and ``aurep infer``.

:mod:`.landmarker` (MediaPipe FaceLandmarker, shipped model in ``assets/``), :mod:`.mapping`
(478 mesh points -> iBUG 68), :mod:`.align` (similarity alignment to a template) and
:mod:`.preprocessor` (frames in, aligned crops out).
"""
