"""The model: the :class:`~.hypernetwork.Hypernetwork` object built from a file's dict (:mod:`.decode`) or anew
(:mod:`.create`; :mod:`.options` lists its choices without torch), its MLP modules exactly as A1111 builds them
(:mod:`.module`, :mod:`.activations`), which Stable Diffusion family its widths are for (:mod:`.family`), and
ordinary tensors whatever the mode (:mod:`.tensor_modes`)."""
