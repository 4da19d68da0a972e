-- A tracked campaign's number, text, tags and expiry can change after its code is printed
-- (the code holds only the short link); when it last changed.
ALTER TABLE campaigns ADD COLUMN updated_at TIMESTAMPTZ;
