//! Background loading: worker threads fill a bounded queue of ready batches whose order and content depend only on the seed.
