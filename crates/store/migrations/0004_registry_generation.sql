-- Generation 2 moves with every registration, so servers can cache registry listings.
INSERT INTO access_generation (id, value) VALUES (2, 0);
