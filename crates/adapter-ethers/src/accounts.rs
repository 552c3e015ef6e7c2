//! Custodial account generation with k256, through ethers' re-exports.

use ethers::core::k256::ecdsa::SigningKey;
use ethers::core::rand::rngs::OsRng;
use ethers::utils::secret_key_to_address;
use meditrustal_identity::{AccountError, AccountGenerator, CustodialAccount};
use zeroize::{Zeroize, Zeroizing};

use crate::convert::to_domain_address;

/// Generates secp256k1 accounts from the operating system's CSPRNG.
#[derive(Clone, Copy, Debug, Default)]
pub struct RandomAccountGenerator;

impl AccountGenerator for RandomAccountGenerator {
    fn generate(&self) -> Result<CustodialAccount, AccountError> {
        // `SigningKey` zeroizes its scalar on drop; the byte copy made here
        // is wiped by hand once it has been moved into the zeroizing vector.
        let signing_key = SigningKey::random(&mut OsRng);
        let address = to_domain_address(secret_key_to_address(&signing_key));
        let mut key_bytes = signing_key.to_bytes();
        let secret_key = Zeroizing::new(key_bytes.to_vec());
        key_bytes.as_mut_slice().zeroize();

        Ok(CustodialAccount {
            address,
            secret_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use ethers::signers::{LocalWallet, Signer};

    use super::*;

    #[test]
    fn generated_key_controls_generated_address() {
        let account = RandomAccountGenerator.generate().unwrap();
        let wallet = LocalWallet::from_bytes(&account.secret_key).unwrap();

        assert_eq!(account.secret_key.len(), 32);
        assert_eq!(to_domain_address(wallet.address()), account.address);
    }

    #[test]
    fn generated_accounts_differ() {
        let first = RandomAccountGenerator.generate().unwrap();
        let second = RandomAccountGenerator.generate().unwrap();

        assert_ne!(first.address, second.address);
        assert_ne!(*first.secret_key, *second.secret_key);
    }
}
