//! The AWS adapters against moto (and, for what moto lacks, a wire fake): one test binary so
//! that the AWS SDK is linked once. Run through `scripts/with-emulators aws -- cargo test -p
//! thisthat-aws`, which starts moto and sets `THISTHAT_MOTO_URL`; without it every test here
//! fails, by design, rather than skipping.

mod domain;
mod dynamodb;
mod opener;
mod rekognition;
mod rekognition_fake;
mod round_trips;
mod s3;
mod sns;
mod support;
