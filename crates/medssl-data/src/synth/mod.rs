//! Synthetic CT/MRI phantoms (`medssl synth`): abdomen CT and MRI, head-and-neck CT, tumour CT, written as MSD tasks or pretraining collections.
