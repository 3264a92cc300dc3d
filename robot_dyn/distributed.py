"""Data-parallel training under torchrun: the rank and world size, and gradient averaging for models
trained through a custom loss (not a forward() that DistributedDataParallel could wrap)."""
from __future__ import annotations

import os


def distributed() -> tuple[int, int]:
    """(rank, world size) under torchrun (the process group initialised once, NCCL on GPU, else gloo);
    (0, 1) otherwise."""
    import torch

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (torch.distributed.get_rank(), world) if world > 1 else (0, 1)


def average_gradients(module, world: int) -> None:
    """Average every parameter's gradient over the ranks (what DDP does after backward, unbucketed)."""
    import torch

    if world == 1:
        return
    for parameter in module.parameters():
        if parameter.grad is not None:
            torch.distributed.all_reduce(parameter.grad)
            parameter.grad /= world


def finish() -> None:
    """Every rank leaves together, after rank 0 has saved: a rank that exits while another still works
    has aborted at shutdown ('terminate called without an active exception')."""
    import torch

    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


def parameters_agree(module, world: int) -> bool:
    """Whether every rank holds the same parameters (what gradient averaging keeps so; buffers such as
    BatchNorm's running statistics are each rank's own): the ranks' checksums gathered and compared."""
    import torch

    if world == 1:
        return True
    checksum = torch.stack([p.detach().double().sum() for p in module.parameters()]).sum().reshape(1).cpu()
    gathered = [torch.zeros_like(checksum) for _ in range(world)]
    torch.distributed.all_gather(gathered, checksum)
    return all(torch.equal(g, gathered[0]) for g in gathered)
