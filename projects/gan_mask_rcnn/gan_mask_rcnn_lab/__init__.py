"""The lab beside ``gan_mask_rcnn``: what the tools and tests use, nothing a config needs.

Experiment bookkeeping (``mim_runs``, ``run_records``, ``experiment_tables``,
``model_comparison``, ``comparison_plots``) and data tools (``synthetic_shapes``,
``instance_masks_to_coco``, ``glas_to_coco``, ``data_roots``). It imports ``gan_mask_rcnn``; the
package never imports it, so configs and users of the registered modules do not
pull in SciPy, the plots or the converters.
"""
