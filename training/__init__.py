"""Training IMSFR: everything train.py runs on top of the network (``model/``)
and the training data (``dataset/``).

    args.py         the command line of train.py, stage defaults filled in
    trainer.py      Trainer: the network with Adam, the LR schedule, the AMP scaler and the loss
    losses.py       bootstrapped cross-entropy with its warm-up, the training loss
    data.py         the stage's data set, its distributed sampler and the loader of each epoch
    rng.py          seeding, and the RNG states a checkpoint records
    checkpoints.py  full training checkpoints: writing, reading and checking them
    stop.py         SIGINT / SIGTERM as a request to stop, save and exit
    logger.py       TensorBoard and text logs, the prediction grid
    loop.py         run_training: set-up, resume, the iteration loop, the final save
    errors.py       the errors that stop a run with a message (and their exit codes)

The layers: util <- dataset <- model <- training <- train.py and scripts/.
"""
