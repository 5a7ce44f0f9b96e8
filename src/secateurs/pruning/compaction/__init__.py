"""The compaction toolkit: the layer forms a training-time pruned model can run in (the kept-columns
:mod:`.compact_conv`, SG-CNN's diverse group convolution :mod:`.diverse_conv`), the checks that keep
a form only where it is measured faster (:mod:`.fastest_form`, :mod:`.unread`), and the small
helpers they share (:mod:`.layers`, :mod:`.layer_groups`, :mod:`.dead_channels`).

Every training-time method (SPP, SG-CNN, Campfire) and the replay of a recorded model
(:mod:`secateurs.pruning.history`) import these; the toolkit imports no method.
"""
